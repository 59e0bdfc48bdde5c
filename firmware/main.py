from citynode_fw.node import run

run()
