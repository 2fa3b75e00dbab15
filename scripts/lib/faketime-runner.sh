#!/usr/bin/env bash
# A cargo target runner: runs one test binary under libfaketime at
# $TOLLGATE_FAKE_DATE (the clock starts there and runs on; processes the test
# starts share it). Used by scripts/test-dates.sh: nextest itself hangs
# when run under faketime, so only the test processes are.
exec faketime "${TOLLGATE_FAKE_DATE:?}" "$@"
