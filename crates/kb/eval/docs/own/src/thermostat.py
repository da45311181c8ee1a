"""Thermostat controller for the greenhouse.

Reads the temperature sensor every minute and switches the heater relay.
"""

TARGET_CELSIUS = 18.0
# Hysteresis: the heater turns on below TARGET - 0.5 and off above TARGET + 0.5,
# so the relay does not chatter around the target.
HYSTERESIS = 0.5
# Frost protection: below this the heater always runs, even at night.
FROST_CELSIUS = 4.0


def heater_should_run(temperature: float, running: bool, night: bool) -> bool:
    """Decide whether the heater relay is on."""
    if temperature < FROST_CELSIUS:
        return True
    target = TARGET_CELSIUS - 3.0 if night else TARGET_CELSIUS
    if running:
        return temperature < target + HYSTERESIS
    return temperature < target - HYSTERESIS
