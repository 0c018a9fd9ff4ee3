"""The sending engine, in the order a send flows through it: plan (a campaign into chunks,
once), chunks (run one chunk as a time-boxed slice), messages (render each recipient's
message, failing only that recipient), in_app / external (deliver a slice step by step),
progress (counters moved by the rows each statement changed, rate and ETA)."""
