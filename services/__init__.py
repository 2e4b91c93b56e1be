"""The interviewer's microservices; each subpackage is one process (`python -m services.NAME`)."""
