package com.example.api;

import org.junit.jupiter.api.Test;

class PayTest {
    @Test
    void chargesCard() {}

}
