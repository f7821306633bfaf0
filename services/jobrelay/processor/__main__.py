"""`python -m jobrelay.processor`: run the processor service."""

from jobrelay.processor.main import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
