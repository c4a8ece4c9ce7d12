"""When activations are due: `schedule` (the due times of a schedule and what to run now, pure),
`timelines` (the wall-clock arithmetic under it, correct across daylight-saving changes) and
`describe` (a schedule in words)."""
