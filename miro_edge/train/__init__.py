"""miro_edge.train"""
