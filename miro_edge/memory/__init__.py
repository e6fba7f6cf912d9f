"""miro_edge.memory"""
