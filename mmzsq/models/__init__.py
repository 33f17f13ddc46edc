"""mmzsq.models"""
