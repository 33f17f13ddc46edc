"""mmzsq.visualization"""
