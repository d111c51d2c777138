"""The terminal front end: `newsbot` and its commands (`main`), the chat loop (`chat`),
terminal rendering (`render`, `terminal_text`, `progress`), the cold-start helpers of
`newsbot ask` (`prefetch`, `preload`) and the quality evaluation (`evaluate`)."""
