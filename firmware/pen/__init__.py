# The portable core of the pen firmware: no pins, no clocks (see DESIGN §2).
