"""Test and load-test support: real processes (services, redis-server) on loopback."""
