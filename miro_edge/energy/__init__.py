"""miro_edge.energy"""
