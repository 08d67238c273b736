from tests.chat.conftest import chat_env  # noqa: F401 - shared fixture: emulator + seeded prompts
