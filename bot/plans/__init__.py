"""Money: the plan catalogue, what cards cost, and the cheapest way to keep them running."""
