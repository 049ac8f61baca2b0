"""The ``switchboard`` command line (:mod:`switchboard.cli.main`) and the demo launcher (:mod:`.demo`)."""
