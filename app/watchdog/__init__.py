"""The watchdog, `python -m app watchdog`: probes the gateway, restarts it when it hangs or dies
(as its supervisor, or through the Docker Engine API), and sends alerts. It imports none of the
gateway's own modules but its settings, so it starts in a moment and survives what breaks them."""
