"""Face datasets and the degradations that make their low-resolution inputs."""
