"""How the router talks to the outside: its PostgreSQL tables and the council files it reads."""
