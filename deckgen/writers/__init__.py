"""Writers put a DeckContent into a deck: a .pptx file or a Google Slides presentation."""
