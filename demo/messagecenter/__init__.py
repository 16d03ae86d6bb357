"""messagecenter: a demo of conveyor that sends notifications to an ntfy topic."""
