package com.example.api;

import org.junit.jupiter.api.Test;

class RoutesTestCase {
    @Test
    void listsRoutes() {}

}
