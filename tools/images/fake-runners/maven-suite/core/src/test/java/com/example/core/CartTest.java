package com.example.core;

import org.junit.jupiter.api.Test;

class CartTest {
    @Test
    void addsItems() {}

    @Test
    void removesItems() {}

}
