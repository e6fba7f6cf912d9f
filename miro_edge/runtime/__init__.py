"""miro_edge.runtime"""
