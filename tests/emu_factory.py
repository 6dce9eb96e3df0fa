"""The emulator factory that both Python test suites' conftests use
(tests/emulator, tests/python): each imports the emulator its own way and
passes its Emulator class."""


def emulator_factory(emulator_cls, **defaults):
    """The body of a pytest fixture (``yield from`` it): yields
    ``make(**options)``, which starts an emulator_cls with defaults updated by
    options; every emulator it started is stopped at teardown."""
    started = []

    def make(**options):
        emu = emulator_cls(**{**defaults, **options})
        emu.start()
        started.append(emu)
        return emu

    yield make
    for emu in started:
        emu.stop()
