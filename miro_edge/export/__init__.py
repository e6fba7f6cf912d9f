"""miro_edge.export"""
