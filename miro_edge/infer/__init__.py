"""miro_edge.infer"""
