# The pen's native user C modules (USER_C_MODULES, given by
# tools/build_image.py to the rp2 port's build): one folder each.
include(${CMAKE_CURRENT_LIST_DIR}/penusb/micropython.cmake)
