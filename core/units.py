"""Time units: InfluxDB and every timestamp in energyhost count nanoseconds since the Unix epoch."""

NS = 10**9          # nanoseconds per second
