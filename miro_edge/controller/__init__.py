"""miro_edge.controller"""
