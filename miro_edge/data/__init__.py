"""miro_edge.data"""
