def x():
    pass
