"""Deployment: local multi-process runs (`make run`), container and Kubernetes files."""
