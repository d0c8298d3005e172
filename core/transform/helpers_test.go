package transform

import "math/big"

type bigInt = big.Int

func one() *big.Int { return big.NewInt(1) }

func big2() *big.Int { return big.NewInt(2) }
