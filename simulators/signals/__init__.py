"""Deterministic, physically plausible signals for every device of a fleet, with fault injection.

``FleetSignals(fleet, seed)`` answers ``values(device_id, t)`` for any unix time ``t`` (and
``values_array(device_id, times)`` vectorised, bit-identical at the same ``t``): the live Modbus/MQTT
simulators and the InfluxDB backfill see the same history.  The model, its channels, normal ranges
and fault effects are described in docs/simulators.md.

One module per physical topic: :mod:`.weather`, :mod:`.load`, :mod:`.pv`, :mod:`.ev`,
:mod:`.transformer`, :mod:`.meters` (with :mod:`.supply` and :mod:`.demand`), :mod:`.counters`,
:mod:`.faults`; :mod:`.site` puts one site together and :mod:`.fleet` is the public façade.
"""

from core.channels import CHANNELS

from .clock import EARLIEST, GRID_S, ORIGIN, day_types
from .faults import FAULT_TYPES, SUNSPEC_EVENTS, FaultWindow
from .fleet import FleetSignals

__all__ = ["CHANNELS", "EARLIEST", "FAULT_TYPES", "GRID_S", "ORIGIN", "FaultWindow", "FleetSignals",
           "SUNSPEC_EVENTS", "day_types"]
