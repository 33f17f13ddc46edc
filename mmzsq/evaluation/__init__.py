"""mmzsq.evaluation"""
