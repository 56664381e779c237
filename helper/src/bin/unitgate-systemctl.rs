use unitgate_helper::main;
