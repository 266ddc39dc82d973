"""``conveyor ci``: the ML tests of a change, compared with a baseline from the main branch,
reported for the pull request."""
