"""Stage 2: workers claim jobs, extract results and the image, and finish with an outbox event."""
