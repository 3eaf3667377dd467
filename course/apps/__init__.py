"""Reference apps that later lessons drive and test (lesson 09 builds the music store step by step)."""
