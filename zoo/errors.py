"""The project's own exceptions. Both are ``ValueError`` subclasses, so ``except ValueError`` works."""


class BudgetError(ValueError):
    """No candidate meets a budget. The message names the budget, the cheapest candidate's cost and
    a budget that would work; the same facts are attributes for programs."""

    def __init__(self, message: str, *, budget: str | None = None, cheapest: dict | None = None,
                 would_work: float | None = None):
        super().__init__(message)
        self.budget = budget
        self.cheapest = cheapest
        self.would_work = would_work


class ModelFileError(ValueError):
    """A saved or exported model file is missing, truncated, corrupt or inconsistent with its config."""
