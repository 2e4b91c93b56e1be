"""What every service needs, written once: config, logging, server bootstrap, client channels,
audio framing, clocks, retries and provider fallback."""
