"""Pure domain rules (no database, no I/O): the conversation state machine and the value enums."""
