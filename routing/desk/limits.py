"""How long and how often the desk waits, retries, remembers and sweeps."""

from datetime import timedelta

# How long a user group's members are trusted before asking Slack again.
GROUP_CACHE_SECONDS = 300.0
# How long an event id is remembered: Slack retries within minutes, redelivers within hours.
EVENT_MEMORY = timedelta(days=7)
# At start-up, routed tickets this recent that need a human and have no page are paged.
UNPAGED_LOOKBACK = timedelta(days=2)
# At start-up, intake messages this long before the newest ticket are read back too: events
# acknowledged but not stored before a crash are older than tickets stored after them.
CATCH_UP_OVERLAP_SECONDS = 600.0
# ... and never less than this long before now: a message the store refused (not acknowledged)
# that Slack stopped redelivering is older than the tickets stored once the store came back.
CATCH_UP_WINDOW_SECONDS = 6 * 3600.0
# A history read Slack refuses (at start, or after the store came back) is tried again after
# these delays, then logged and said in the ops alert.
READ_BACK_RETRY_DELAYS = (2.0, 10.0, 60.0)
# The same ops alert (the store refuses, a channel refuses posts) is said at most this often.
OPS_ALERT_INTERVAL_SECONDS = 600.0
# A ticket whose posting failed (Slack down, rate limited past every retry) is tried again after
# these delays; after the last its lease runs out and a sweep (any replica's) takes it up again.
ROUTING_RETRY_DELAYS = (1.0, 5.0, 30.0, 120.0)
# Pages to one on-call about one customer's tickets within this long (by the desk's clock) of
# the first page are one page, then a count in its thread: a burst of "URGENT" pages nobody twice.
BURST_WINDOW_SECONDS = 600.0
# An edit this soon after an edit moved the ticket away from a team brings back that team's
# post (updated) instead of posting again: alternating edits keep one post per team.
EDIT_WINDOW_SECONDS = 600.0
# A replica's claim on a ticket it routes lasts this long unless renewed; renewed this many times
# per lease while held. A dead replica's tickets are taken over once their lease runs out.
LEASE_SECONDS = 30.0
LEASE_RENEWALS = 3
# A reply claimed for sending this long ago and still "sending" lost its sender (a replica that
# died mid-send): any replica's sweep settles it, sent if Slack has it, else a draft again.
# Longer than a send with its client timeout and retries, so a live send is never settled.
SEND_STALE_SECONDS = 120.0
# Abandoned tickets taken per sweep (each renewal round), and per statement at start-up.
SWEEP_BATCH = 100
START_SWEEP_BATCH = 500
# A ticket still waiting for the model this long after its LLM deadline lost its refiner (a
# replica that died): any replica's sweep marks it "model did not answer".
MODEL_LATE_MARGIN_SECONDS = 30.0
