"""mmzsq.datasets"""
