"""The id pattern shared by customers, sites, devices and MQTT users.

Lower case letters, digits and ``_ . -``, starting with a letter or digit, at most 64
characters: safe in URLs, file names, InfluxDB tags and MQTT topic levels (no ``+``, ``#``, ``/``).
"""

import re

ID_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
ID_RE = re.compile(ID_PATTERN)
ID_RULE = "must match [a-z0-9][a-z0-9_.-]{0,63}"
