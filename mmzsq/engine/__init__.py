"""mmzsq.engine"""
