"""What every OYE service agrees on: subjects, headers, frames, settings and the bus."""
