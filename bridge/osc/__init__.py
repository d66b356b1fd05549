"""The OSC side: byte-level wire checks, the server loop, dispatch and handlers, the job queue,
OSCQuery, Zeroconf and DAW followers."""
