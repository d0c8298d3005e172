package transform

import "math/big"

type bigInt = big.Int

func one() *big.Int { return big.NewInt(1) }
