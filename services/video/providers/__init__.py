"""Video analysis providers: one module each behind providers.base.Provider."""
