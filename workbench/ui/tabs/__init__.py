"""One file per tab: each builds its components and wires them to the Controller."""
