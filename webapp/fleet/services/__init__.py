"""Business logic of the fleet, as typed functions. Views, consumers and tasks call these."""
