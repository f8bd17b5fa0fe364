"""The reproduction study: the grid of small runs (`grid`) and its report (`report`)."""
