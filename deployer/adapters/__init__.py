"""One adapter per external system: the only code that runs programs or talks to networks."""
